import Testing

@Test func placeholderMeshProtoTests() {}
