"""Media: opening videos, keeping and resizing frames, decode budgets, what kind of file an input is, reading it in the background."""
