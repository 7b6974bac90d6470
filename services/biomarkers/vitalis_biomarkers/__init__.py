"""The biomarkers service of Vitalis."""
