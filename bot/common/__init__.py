"""Small pieces every package uses: the injected clock and duration parsing."""
