"""The report: experiment grids, result tables and statistics, figures, the mask browser, notebooks."""
