# Regenerates the npy fixtures of the runtime unit tests with numpy:
#   /usr/bin/python3 make_fixtures.py
# The files are committed; the tests never run Python.
import numpy as np

np.save("f32_2x3.npy", (np.arange(6, dtype="<f4").reshape(2, 3) * 0.5 - 1.0))
np.save("i64_4.npy", np.array([-3, 0, 7, 2**40], dtype="<i8"))
np.save("f16_scalar.npy", np.array(-2.5, dtype="<f2"))
with open("bool_2x2_v2.npy", "wb") as f:
    np.lib.format.write_array(f, np.array([[True, False], [False, True]]),
                              version=(2, 0))
