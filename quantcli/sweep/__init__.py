"""Parameter sweeps: grids of strategy parameters run through the backtest core on Dask."""
