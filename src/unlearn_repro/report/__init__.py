"""Tables (CSV + Markdown), figures (PNG) and the paper's published numbers for side-by-side reading."""
