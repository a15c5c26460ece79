import Testing

@Test func placeholderMicro() {}
