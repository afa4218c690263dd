"""Many runs at once: sweeps over seeds and settings, their statistics, plots and tables.

A run is data (`RunSpec`: its resolved config and its run dir); an engine, looked up by name in
`engines.ENGINES` (local processes, Ray), executes run specs and knows nothing of DDPG; every run dir
is an ordinary `ddpg train` run dir. `workflows` creates or resumes sweeps and searches. The
statistics are pure functions (`stats`), and plotting only draws what they return.
"""
