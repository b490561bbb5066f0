"""The local executor: files under .rentstack/, the CPU image, docker compose on this machine."""
