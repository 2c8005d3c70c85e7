"""Unit tests of scripts/mmtests_table.py against hand-computed numbers.

The sign convention is the one thing a reader of the tables must be able
to trust: positive means better than the baseline column, whether lower
(cycles, seconds) or higher (faults per second) is better.  Several cases
are rows of the RFC's own tables, recomputed by hand from its numbers.

    python3 -m unittest discover -s tests/harness -p 'test_*.py'
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts"))
import mmtests_table as mt  # noqa: E402


class Percentages(unittest.TestCase):
    def test_lower_is_better(self):
        # 150 cycles against a baseline of 200: 25% better.
        self.assertAlmostEqual(mt.pndiff(200, 150), 25.0)
        self.assertAlmostEqual(mt.pndiff(200, 250), -25.0)
        self.assertAlmostEqual(mt.pct_diff(200, 150, mt.LOWER), 25.0)

    def test_higher_is_better(self):
        # 250 faults/s against 200: 25% better; 150: 25% worse.
        self.assertAlmostEqual(mt.pdiff(200, 250), 25.0)
        self.assertAlmostEqual(mt.pdiff(200, 150), -25.0)
        self.assertAlmostEqual(mt.pct_diff(200, 250, mt.HIGHER), 25.0)

    def test_same_value_is_zero_either_way(self):
        self.assertEqual(mt.pndiff(331.33, 331.33), 0.0)
        self.assertEqual(mt.pdiff(331.33, 331.33), 0.0)

    def test_rfc_rows(self):
        # kernbench "User min 883.59 ( 0.00%) 700.16 ( 20.76%)":
        # 100 - 700.16 * 100 / 883.59 = 100 - 79.2404 = 20.7596
        self.assertEqual(mt.format_pct(mt.pndiff(883.59, 700.16)), " ( 20.76%)")
        # "Elapsed mean 129.19 105.73 ( 18.16%)": 100 - 81.8407 = 18.1593
        self.assertEqual(mt.format_pct(mt.pndiff(129.19, 105.73)), " ( 18.16%)")
        # A variance row, also pndiff, so more spread reads negative:
        # "System range 3.50 11.70 (-234.29%)": 100 - 334.2857 = -234.2857
        self.assertEqual(mt.format_pct(mt.pndiff(3.50, 11.70)), " (-234.29%)")
        # pft "Faults/cpu 1 953441.5530 954011.8576 ( 0.06%)", pdiff:
        # 954011.8576 * 100 / 953441.5530 - 100 = 0.0598
        self.assertEqual(mt.format_pct(mt.pdiff(953441.5530, 954011.8576)),
                         " (  0.06%)")
        # pft "Faults/sec 2 1814498.4087 1748800.3800 ( -3.62%)":
        # 96.3793 - 100 = -3.6207
        self.assertEqual(mt.format_pct(mt.pdiff(1814498.4087, 1748800.3800)),
                         " ( -3.62%)")

    def test_undefined(self):
        self.assertIsNone(mt.pndiff(0, 5))
        self.assertEqual(mt.pndiff(0, 0), 0.0)
        self.assertIsNone(mt.pdiff(None, 5))
        self.assertEqual(mt.format_pct(None), " (    n/a)")
        with self.assertRaises(ValueError):
            mt.pct_diff(1, 2, "sideways")


class Cells(unittest.TestCase):
    def test_cell(self):
        self.assertEqual(mt.format_cell(331.33, 0.0, 10, 2), "    331.33 (  0.00%)")
        self.assertEqual(mt.format_cell(324.56, 2.0433, 10, 2), "    324.56 (  2.04%)")
        self.assertEqual(mt.format_cell(953441.553, 0.0598, 12, 4),
                         " 953441.5530 (  0.06%)")
        self.assertEqual(mt.format_cell(None, None, 6, 2), "   n/a (    n/a)")


class Summaries(unittest.TestCase):
    def test_trimmed_mean_drops_only_the_largest(self):
        self.assertEqual(mt.trimmed_mean([1, 2, 3, 10]), 2.0)
        # Ten samples keep nine: (1+...+9)/9 = 5, the 100 is dropped.
        self.assertEqual(mt.trimmed_mean(list(range(1, 10)) + [100]), 5.0)
        # Only one copy of a repeated maximum goes.
        self.assertEqual(mt.trimmed_mean([4, 4, 1]), 2.5)
        self.assertEqual(mt.trimmed_mean([7]), 7.0)
        self.assertIsNone(mt.trimmed_mean([]))

    def test_mean_stddev(self):
        xs = [2, 4, 4, 4, 5, 5, 7, 9]
        self.assertEqual(mt.mean(xs), 5.0)
        # sum of squares 32, n - 1 = 7: sqrt(32/7) = 2.13809
        self.assertAlmostEqual(mt.stddev(xs), 2.138089935, places=8)
        self.assertEqual(mt.stddev([3]), 0.0)

    def test_summary(self):
        s = mt.summary([129.0, 127.5, 133.0])
        self.assertEqual(s["min"], 127.5)
        self.assertEqual(s["max"], 133.0)
        self.assertEqual(s["range"], 5.5)
        self.assertAlmostEqual(s["mean"], 129.8333333, places=6)
        # deviations -0.8333, -2.3333, 3.1667; squares sum 16.1667; /2 -> 2.8431
        self.assertAlmostEqual(s["stddev"], 2.843120, places=5)


class Tables(unittest.TestCase):
    ROWS = [
        ("order-0 alloc-64", {"vanilla": 331.33, "magazine": 324.56}, mt.LOWER),
        ("Faults/sec 1", {"vanilla": 200.0, "magazine": 250.0}, mt.HIGHER),
        ("Elapsed mean", {"vanilla": 129.19}, mt.LOWER),
    ]

    def test_baseline_column_is_zero_and_signs(self):
        cells = dict(mt.table_rows(self.ROWS, ["vanilla", "magazine"], "vanilla"))
        self.assertEqual(cells["order-0 alloc-64"][0], (331.33, 0.0))
        self.assertAlmostEqual(cells["order-0 alloc-64"][1][1], 2.04325, places=4)
        self.assertAlmostEqual(cells["Faults/sec 1"][1][1], 25.0)
        self.assertEqual(cells["Elapsed mean"][1], (None, None))

    def test_baseline_need_not_be_first(self):
        cells = dict(mt.table_rows(self.ROWS, ["magazine", "vanilla"], "magazine"))
        # 331.33 against 324.56, lower is better: 100 - 102.0859 = -2.0859
        self.assertAlmostEqual(cells["order-0 alloc-64"][1][1], -2.08590, places=4)
        self.assertEqual(cells["order-0 alloc-64"][0][1], 0.0)
        # 200 against 250, higher is better: -20%
        self.assertAlmostEqual(cells["Faults/sec 1"][1][1], -20.0)

    def test_missing_baseline_gives_na(self):
        cells = dict(mt.table_rows(self.ROWS, ["vanilla", "magazine"], "magazine"))
        self.assertEqual(cells["Elapsed mean"][0], (129.19, None))

    def test_format(self):
        text = mt.format_table("pagealloc", ["vanilla", "magazine"], self.ROWS[:2],
                               "vanilla")
        lines = text.splitlines()
        self.assertEqual(lines[1],
                         "order-0 alloc-64  331.33 (  0.00%)  324.56 (  2.04%)")
        self.assertEqual(lines[2],
                         "Faults/sec 1      200.00 (  0.00%)  250.00 ( 25.00%)")
        self.assertTrue(lines[0].startswith("pagealloc"))
        self.assertTrue(lines[0].endswith("magazine"))
        # Every line as long as the first data line: the columns line up.
        self.assertEqual(len(lines[0]), len(lines[1]))


class Spread(unittest.TestCase):
    def test_coefficient_of_variation(self):
        # mean 5, sample stddev 2.13809: 42.76%; one value: 0.0%; none: n/a.
        text = mt.format_spread("t", ["a", "b", "c"],
                                [("row", {"a": [2, 4, 4, 4, 5, 5, 7, 9], "b": [3]})])
        cells = text.splitlines()[1].split()
        self.assertEqual(cells[1:], ["42.8%", "n=8", "0.0%", "n=1", "n/a"])


class Markdown(unittest.TestCase):
    def test_median(self):
        self.assertEqual(mt.median([3, 1, 2]), 2.0)
        self.assertEqual(mt.median([4, 1, 2, 3]), 2.5)
        self.assertIsNone(mt.median([]))

    def test_median_range_and_best(self):
        # Lower is better: b's median 2 beats a's 3; c has no values.
        text = mt.format_markdown("t", ["a", "b", "c"],
                                  [("ns", {"a": [3, 1, 9], "b": [2, 2.5, 1.5]},
                                    mt.LOWER),
                                   ("ops", {"a": [3, 1, 9], "b": [2]}, mt.HIGHER)],
                                  prec=1)
        lines = text.splitlines()
        self.assertEqual(lines[0], "| t | a | b | c |")
        self.assertEqual(lines[1], "|---|---:|---:|---:|")
        self.assertEqual(lines[2], "| ns | 3.0 [1.0..9.0] | **2.0** [1.5..2.5] | n/a |")
        self.assertEqual(lines[3], "| ops | **3.0** [1.0..9.0] | 2.0 [2.0..2.0] | n/a |")


if __name__ == "__main__":
    unittest.main()
