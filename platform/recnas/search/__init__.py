"""Architecture search on Ray Tune: searchers, candidate scoring, reports."""
