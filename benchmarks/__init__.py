"""Speed and scale benchmarks, run by ``assistant bench`` (see run.py); not part of the installed assistant."""
