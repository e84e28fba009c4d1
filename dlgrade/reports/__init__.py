"""Report writers, one module per format. They read results; they never compute grades."""
