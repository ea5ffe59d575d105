"""DVC stage entry points: thin Typer commands, one per params section."""
