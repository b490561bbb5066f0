"""Remote hosts: facts read over one round trip, and the weights download that runs on the host."""
