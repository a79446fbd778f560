"""Simulated ``rocm-smi`` and ``amd-smi`` of a lab host.

They print what the real tools print for the host's state and ROCm version
(the captures in ``tests/fixtures/smi/``), and their set operations change the state
and re-render the sysfs/KFD tree under the host's lock. Texts not covered by a fixture are
reconstructed from the tools' source (rocm_smi.py, amdsmi_commands.py) and marked so.

:mod:`~fleetbench.lab.smi.rocm` and :mod:`~fleetbench.lab.smi.amd` are the two tools,
:mod:`~fleetbench.lab.smi.common` what they share, :mod:`~fleetbench.lab.smi.install`
the bin/ wrappers a lab host runs them through.
"""

from __future__ import annotations

from fleetbench.lab.smi import amd, rocm
from fleetbench.lab.smi.common import (
    SIMULATORS,
    TOOLS,
    Console,
    answer_queries,
    main,
    render_host,
    run,
)
from fleetbench.lab.smi.install import install_host

SIMULATORS.update({"rocm-smi": rocm.rocm_smi, "amd-smi": amd.amd_smi})

__all__ = ["TOOLS", "Console", "answer_queries", "install_host", "main", "render_host", "run"]
