"""Workflows: loops that run a model over a dataset and hand the results to evaluation.

This layer sits above ``infer`` (models running on images) and ``evaluate`` (scoring
arrays) and below the command line, so neither evaluation nor inference imports the other.
"""
