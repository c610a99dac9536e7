import unittest

from wordfreq import top_words


class TopWordsTest(unittest.TestCase):
    def test_basic(self):
        self.assertEqual(top_words("b a b", 2), [("b", 2), ("a", 1)])


if __name__ == "__main__":
    unittest.main()
