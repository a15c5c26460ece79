import Testing

@Test func placeholderNatsTests() {}
