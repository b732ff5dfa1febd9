"""Prints the versions of the Python engines as JSON (test/setup/env.test.ts)."""
import json
import sys

import pyarrow
import pyiceberg
import pyspark

print(json.dumps({
    "python": sys.version.split()[0],
    "pyiceberg": pyiceberg.__version__,
    "pyspark": pyspark.__version__,
    "pyarrow": pyarrow.__version__,
}))
