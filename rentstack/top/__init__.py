"""`rentstack top`: a live terminal view of a running vLLM server, read from its /metrics.

`prometheus` parses the exposition text, `names` maps each figure to its metric name across
vLLM versions, `view` turns two reads into the numbers and lines of one frame (all pure);
`gpu` is the nvidia-smi fact; `live` reads the endpoint and redraws (the only I/O).
"""
