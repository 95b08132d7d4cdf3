"""The public monthly report: data from the metric queries, rendered as one HTML file."""
