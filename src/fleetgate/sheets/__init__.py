"""Spreadsheets: ``.xlsx`` workbooks read and written with openpyxl (its only home)."""

from fleetgate.sheets.xlsx import XlsxWorkbooks

__all__ = ["XlsxWorkbooks"]
