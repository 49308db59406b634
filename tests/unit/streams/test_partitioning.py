from streams.kafka.partitioning import murmur2, partition_for


def test_murmur2_matches_kafkas_own_vectors():
    # from Kafka's UtilsTest (signed ints there)
    assert murmur2(b"21") - 2**32 == -973932308
    assert murmur2(b"foobar") - 2**32 == -790332482
    assert murmur2(b"a-little-bit-long-string") - 2**32 == -985981536
    assert murmur2(b"a-little-bit-longer-string") - 2**32 == -1486304829


def test_partition_is_stable_and_in_range():
    assert partition_for("abc", 4) == partition_for(b"abc", 4)
    assert all(0 <= partition_for(str(i), 7) < 7 for i in range(100))
