"""`python -m astropolis` runs the CLI."""

from astropolis.agent.cli import main

main()
