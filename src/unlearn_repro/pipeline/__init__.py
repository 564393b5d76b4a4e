"""The pipeline's steps, one function per Snakemake rule; cli.py parses arguments and calls them."""
