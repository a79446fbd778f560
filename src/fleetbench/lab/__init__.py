"""The lab: a simulated MI300X fleet on one machine (sshd hosts, Docker, registry, MAD)."""

# Here, not in fleet.py, so that the CLI can show them without importing the lab's
# machinery (the Docker SDK and paramiko): every fleetbench command builds the full parser.
DEFAULT_FIRST_ADDRESS = "127.0.0.11"
DEFAULT_PORT = 2222
