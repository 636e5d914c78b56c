"""The Textual console, the only package that imports `textual`. Filled by the console issue."""
