"""Market data: sources that return bars in the mlalgo.bars schema."""
