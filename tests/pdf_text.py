"""Prints the text of a PDF with an independent reader (pypdf), one page after another.

Usage: python pdf_text.py REPORT.pdf  -> the text on stdout, the page count on stderr.
"""
import sys

from pypdf import PdfReader

reader = PdfReader(sys.argv[1])
for page in reader.pages:
    print(page.extract_text())
print(len(reader.pages), file=sys.stderr)
