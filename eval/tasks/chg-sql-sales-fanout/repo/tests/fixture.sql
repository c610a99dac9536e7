INSERT INTO products VALUES (1, 'MUG', 'mug', 800), (2, 'TEE', 't-shirt', 2000), (3, 'CAP', 'cap', 1500);
INSERT INTO suppliers VALUES (1, 'Acme'), (2, 'Bolt & Co');
INSERT INTO product_suppliers VALUES (1, 1, 1), (2, 2, 1);
INSERT INTO orders VALUES
  (1, '2024-01-05 10:00:00', 'shipped'),
  (2, '2024-01-20 16:30:00', 'paid'),
  (3, '2024-02-02 09:15:00', 'cancelled'),
  (4, '2024-02-14 12:00:00', 'open');
INSERT INTO order_items VALUES
  (1, 1, 2, 800), (1, 2, 1, 1900),
  (2, 1, 1, 800),
  (3, 2, 5, 2000),
  (4, 2, 2, 2000), (4, 3, 1, 1500);
