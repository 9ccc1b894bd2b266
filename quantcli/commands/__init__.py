"""Thin Typer commands: parse, call one library function, print."""
