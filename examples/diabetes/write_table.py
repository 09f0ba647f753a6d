"""Write scikit-learn's bundled diabetes data (442 patients, 10 measurements, a disease progression
score a year later) as diabetes.csv and diabetes.parquet beside this file, for spec.yaml.

    python examples/diabetes/write_table.py
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from sklearn.datasets import load_diabetes


def main() -> None:
    bunch = load_diabetes(scaled=False)
    columns = {name: bunch.data[:, i] for i, name in enumerate(bunch.feature_names)}
    columns["progression"] = bunch.target
    table = pa.table(columns)
    here = Path(__file__).resolve().parent
    pcsv.write_csv(table, here / "diabetes.csv")
    pq.write_table(table, here / "diabetes.parquet")
    print(f"wrote {table.num_rows} rows to {here / 'diabetes.csv'} and {here / 'diabetes.parquet'}")


if __name__ == "__main__":
    main()
