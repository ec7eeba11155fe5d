from trackdb.io.lineage_layout import leaf_rows


def test_leaves_in_depth_first_order_and_mothers_between_daughters() -> None:
    # 1 → (2, 3), 3 → (4, 5); 9 is a second root; 7's parent is outside the family.
    rows = leaf_rows([(1, None), (2, 1), (3, 1), (4, 3), (5, 3), (9, None), (7, 42)])
    assert [rows[2], rows[4], rows[5]] == [0.0, 1.0, 2.0]
    assert rows[3] == 1.5
    assert rows[1] == 0.75  # midway between daughter rows 0 and 1.5
    assert [rows[7], rows[9]] == [3.0, 4.0]


def test_empty_family() -> None:
    assert leaf_rows([]) == {}
