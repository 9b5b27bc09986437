use chakra_tests as _;
