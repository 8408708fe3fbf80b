"""Learning from staff: confirmed question -> passage links (links.py), refused questions grouped
by meaning (clustering.py), and the learning-curve simulation (simulate.py)."""
