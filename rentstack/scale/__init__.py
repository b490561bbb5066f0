"""Scaling out past one rented box, on existing engines (pure plans; executors in rentstack.remote).

Two shapes, for two needs:
- more users than one card serves -> replicas: the same single-host deployment on several
  hosts behind vLLM's router (`router.py`);
- a model larger than one host's GPUs -> one vLLM across hosts: tensor parallel inside a
  host, pipeline parallel across hosts, on a Ray cluster (`ray_cluster.py`).
"""
