"""The biomarker dictionary: data, loader, units and conversions."""
