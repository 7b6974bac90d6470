"""The analytes the generated reports print: names (English, German), units, factors, ranges."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Analyte:
    """One analyte as labs print it in conventional and in SI units."""

    english: str
    german: str
    unit: str
    ucum: str
    low: float | None
    high: float | None
    si_unit: str
    si_ucum: str
    si_factor: float
    decimals: int
    si_decimals: int
    loinc: str


ANALYTES: tuple[Analyte, ...] = (
    Analyte("Glucose", "Glukose", "mg/dL", "mg/dL", 70, 99, "mmol/l", "mmol/L", 0.0555, 0, 1, "2345-7"),
    Analyte(
        "Cholesterol, Total",
        "Cholesterin gesamt",
        "mg/dL",
        "mg/dL",
        None,
        200,
        "mmol/l",
        "mmol/L",
        0.02586,
        0,
        2,
        "2093-3",
    ),
    Analyte(
        "LDL Cholesterol",
        "LDL-Cholesterin",
        "mg/dL",
        "mg/dL",
        None,
        100,
        "mmol/l",
        "mmol/L",
        0.02586,
        0,
        2,
        "13457-7",
    ),
    Analyte(
        "HDL Cholesterol",
        "HDL-Cholesterin",
        "mg/dL",
        "mg/dL",
        40,
        None,
        "mmol/l",
        "mmol/L",
        0.02586,
        0,
        2,
        "2085-9",
    ),
    Analyte(
        "Triglycerides",
        "Triglyceride",
        "mg/dL",
        "mg/dL",
        None,
        150,
        "mmol/l",
        "mmol/L",
        0.01129,
        0,
        2,
        "2571-8",
    ),
    Analyte("Creatinine", "Kreatinin", "mg/dL", "mg/dL", 0.6, 1.2, "µmol/l", "umol/L", 88.42, 2, 0, "2160-0"),
    Analyte("Hemoglobin A1c", "HbA1c", "%", "%", 4.0, 5.6, "mmol/mol", "mmol/mol", 10.93, 1, 0, "4548-4"),
    Analyte("Hemoglobin", "Hämoglobin", "g/dL", "g/dL", 13.5, 17.5, "g/l", "g/L", 10.0, 1, 0, "718-7"),
    Analyte(
        "White Blood Cells",
        "Leukozyten",
        "10^9/L",
        "10*9/L",
        4.0,
        11.0,
        "10^9/l",
        "10*9/L",
        1.0,
        1,
        1,
        "6690-2",
    ),
    Analyte(
        "Platelets", "Thrombozyten", "10^9/L", "10*9/L", 150, 400, "10^9/l", "10*9/L", 1.0, 0, 0, "777-3"
    ),
    Analyte("TSH", "TSH basal", "mIU/L", "m[IU]/L", 0.4, 4.0, "mU/l", "m[IU]/L", 1.0, 2, 2, "3016-3"),
    Analyte("Ferritin", "Ferritin", "ng/mL", "ng/mL", 30, 400, "µg/l", "ug/L", 1.0, 0, 0, "2276-4"),
    Analyte(
        "Vitamin D, 25-Hydroxy",
        "25-OH-Vitamin D",
        "ng/mL",
        "ng/mL",
        30,
        100,
        "nmol/l",
        "nmol/L",
        2.496,
        1,
        0,
        "1989-3",
    ),
    Analyte("ALT", "GPT (ALT)", "U/L", "U/L", 7, 56, "U/l", "U/L", 1.0, 0, 0, "1742-6"),
    Analyte("AST", "GOT (AST)", "U/L", "U/L", 10, 40, "U/l", "U/L", 1.0, 0, 0, "1920-8"),
    Analyte("C-Reactive Protein", "CRP", "mg/L", "mg/L", None, 5.0, "mg/l", "mg/L", 1.0, 1, 1, "1988-5"),
    Analyte("Albumin", "Albumin", "g/dL", "g/dL", 3.5, 5.0, "g/l", "g/L", 10.0, 1, 0, "1751-7"),
    Analyte("Sodium", "Natrium", "mmol/L", "mmol/L", 135, 145, "mmol/l", "mmol/L", 1.0, 0, 0, "2951-2"),
    Analyte("Potassium", "Kalium", "mmol/L", "mmol/L", 3.5, 5.1, "mmol/l", "mmol/L", 1.0, 1, 1, "2823-3"),
    Analyte("Uric Acid", "Harnsäure", "mg/dL", "mg/dL", 3.5, 7.2, "µmol/l", "umol/L", 59.48, 1, 0, "3084-1"),
    Analyte(
        "Vitamin B12", "Vitamin B12", "pg/mL", "pg/mL", 200, 900, "pmol/l", "pmol/L", 0.7378, 0, 0, "2132-9"
    ),
    Analyte(
        "Alkaline Phosphatase",
        "Alkalische Phosphatase",
        "U/L",
        "U/L",
        44,
        147,
        "U/l",
        "U/L",
        1.0,
        0,
        0,
        "6768-6",
    ),
    Analyte("GGT", "Gamma-GT", "U/L", "U/L", 9, 48, "U/l", "U/L", 1.0, 0, 0, "2324-2"),
    Analyte("MCV", "MCV", "fL", "fL", 80, 100, "fl", "fL", 1.0, 0, 0, "787-2"),
    Analyte(
        "eGFR",
        "eGFR (CKD-EPI)",
        "mL/min/1.73m2",
        "mL/min/{1.73_m2}",
        60,
        None,
        "ml/min/1,73m2",
        "mL/min/{1.73_m2}",
        1.0,
        0,
        0,
        "98979-8",
    ),
)
