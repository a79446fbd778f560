"""The lab: a simulated MI300X fleet on one machine (sshd hosts, Docker, registry, MAD)."""
