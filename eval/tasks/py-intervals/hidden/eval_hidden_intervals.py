"""Acceptance tests of py-intervals."""
import random
import unittest

import intervals


def merged(xs):
    return [tuple(p) for p in intervals.merge(xs)]


class Merge(unittest.TestCase):
    def test_overlapping_and_unsorted(self):
        self.assertEqual(merged([(8, 10), (1, 3), (2, 6), (15, 18)]), [(1, 6), (8, 10), (15, 18)])

    def test_touching_merge(self):
        self.assertEqual(merged([(3, 5), (1, 3)]), [(1, 5)])

    def test_contained_and_empty(self):
        self.assertEqual(merged([(1, 10), (2, 3), (4, 5)]), [(1, 10)])
        self.assertEqual(merged([]), [])

    def test_zero_length(self):
        self.assertEqual(merged([(2, 2)]), [(2, 2)])
        self.assertEqual(merged([(1, 4), (2, 2)]), [(1, 4)])

    def test_floats(self):
        self.assertEqual(merged([(0.5, 1.5), (1.25, 2.0)]), [(0.5, 2.0)])

    def test_input_not_modified(self):
        xs = [(5, 6), (1, 2), (1, 3)]
        copy = list(xs)
        intervals.merge(xs)
        self.assertEqual(xs, copy)

    def test_invalid(self):
        with self.assertRaises(ValueError):
            intervals.merge([(1, 2), (5, 4)])

    def test_random_against_points(self):
        rnd = random.Random(7)
        for _ in range(200):
            xs = []
            for _ in range(rnd.randint(0, 8)):
                a = rnd.randint(0, 30)
                xs.append((a, a + rnd.randint(0, 6)))
            got = merged(xs)
            for i in range(1, len(got)):
                self.assertLess(got[i - 1][1], got[i][0], got)
            for k in range(0, 80):
                p = k / 2
                self.assertEqual(any(a <= p <= b for a, b in xs), any(a <= p <= b for a, b in got),
                                 (xs, got, p))


class TotalLength(unittest.TestCase):
    def test_union_length(self):
        self.assertEqual(intervals.total_length([(1, 3), (2, 6), (8, 10)]), 7)
        self.assertEqual(intervals.total_length([]), 0)
        self.assertAlmostEqual(intervals.total_length([(0.5, 1.5), (1.0, 2.0)]), 1.5)


if __name__ == "__main__":
    unittest.main()
