"""quantcli: research-and-backtest toolkit for the Indian markets (NSE/BSE)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
