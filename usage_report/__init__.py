"""The visual usage report: one static HTML page for the agency and one per client, read from the marts.

data.py reads the figures (one read-only snapshot), charts.py draws them as inline SVG, page.py writes the
HTML, and writer.py puts the pages on disk. Nothing in a page loads anything from the network.
"""

from usage_report.writer import ReportFiles, default_report_dir, write_reports

__all__ = ["ReportFiles", "default_report_dir", "write_reports"]
