"""Acceptance tests of py-roman."""
import unittest

import roman


class ToRoman(unittest.TestCase):
    def test_known_values(self):
        for n, s in [(1, "I"), (4, "IV"), (9, "IX"), (14, "XIV"), (40, "XL"), (90, "XC"),
                     (400, "CD"), (900, "CM"), (1994, "MCMXCIV"), (2024, "MMXXIV"),
                     (3888, "MMMDCCCLXXXVIII"), (3999, "MMMCMXCIX")]:
            self.assertEqual(roman.to_roman(n), s, n)

    def test_out_of_range(self):
        for n in (0, -1, 4000, 10000):
            with self.assertRaises(ValueError, msg=n):
                roman.to_roman(n)


class FromRoman(unittest.TestCase):
    def test_round_trip(self):
        for n in range(1, 4000):
            self.assertEqual(roman.from_roman(roman.to_roman(n)), n)

    def test_lower_case(self):
        self.assertEqual(roman.from_roman("mcmxciv"), 1994)
        self.assertEqual(roman.from_roman("xLii"), 42)

    def test_invalid(self):
        for s in ["", "IIII", "VX", "IC", "MMMM", "ABC", "IIX", "VV", "LL", "DD", "XM",
                  "CMM", "IXI", " X", "X ", "XIIII", "0"]:
            with self.assertRaises(ValueError, msg=repr(s)):
                roman.from_roman(s)


if __name__ == "__main__":
    unittest.main()
