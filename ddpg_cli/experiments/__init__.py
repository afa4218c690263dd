"""Many runs at once: sweeps over seeds and settings, their statistics, plots and tables.

A run is data (`RunSpec`: its resolved config and its run dir); an engine executes run specs (local
processes today), and knows nothing of DDPG; every run dir is an ordinary `ddpg train` run dir. The
statistics are pure functions (`stats`), and plotting only draws what they return.
"""
