// swift-tools-version:6.2
import PackageDescription

/// The agent mesh: shared libraries under `Shared/`, one executable per service under
/// `Services/`, tests under `Tests/`. C libraries are reached only through their wrapper
/// module (`CNats` → `Nats`, `CPQ` → `Store`, `CMeshProto` → `MeshProto`).
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let log = Target.Dependency.product(name: "Logging", package: "swift-log")
let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")
let lifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

/// A service: `mesh-<name>` executable (thin wiring) plus a library target tests can reach.
func service(_ executable: String, folder: String, library: String, dependencies: [Target.Dependency]) -> [Target] {
    [
        .target(name: library, dependencies: dependencies, path: "Services/\(folder)/Service", swiftSettings: swiftSettings),
        .executableTarget(
            name: executable, dependencies: [.target(name: library), "MeshCore", "MeshRuntime", argumentParser, lifecycle, log],
            path: "Services/\(folder)/Main", swiftSettings: swiftSettings),
    ]
}

let serviceBase: [Target.Dependency] = ["MeshCore", "MeshRuntime", "MeshProto", "Nats", "NatsMicro", log, metrics, lifecycle]

let package = Package(
    name: "agent-mesh",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mesh-registry", targets: ["mesh-registry"]),
        .executable(name: "mesh-supervisor", targets: ["mesh-supervisor"]),
        .executable(name: "mesh-agent-worker", targets: ["mesh-agent-worker"]),
        .executable(name: "mesh-gateway", targets: ["mesh-gateway"]),
        .executable(name: "mesh-metrics-collector", targets: ["mesh-metrics-collector"]),
        .executable(name: "meshctl", targets: ["meshctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
    ],
    targets: [
        // C libraries (system) and generated protobuf-c code.
        .systemLibrary(name: "CNats", path: "Shared/CNats", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        .systemLibrary(name: "CPQ", path: "Shared/CPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(
            name: "CProtobufC", path: "Shared/CProtobufC", pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]),
        .target(name: "CMeshProto", dependencies: ["CProtobufC"], path: "Shared/CMeshProto"),
        .target(name: "CLinux", path: "Shared/CLinux"),

        // Safe Swift layers over the C libraries.
        .target(name: "Nats", dependencies: ["CNats", log], path: "Shared/Nats", swiftSettings: swiftSettings),
        .target(name: "Store", dependencies: ["CPQ", log], path: "Shared/Store", swiftSettings: swiftSettings),
        .target(name: "MeshProto", dependencies: ["CMeshProto"], path: "Shared/MeshProto", swiftSettings: swiftSettings),

        // Mesh-wide pieces with no C.
        .target(
            name: "MeshCore",
            dependencies: [log, metrics, argumentParser],
            path: "Shared/MeshCore", swiftSettings: swiftSettings),
        .target(name: "MeshSupervision", dependencies: ["MeshCore"], path: "Shared/MeshSupervision", swiftSettings: swiftSettings),
        .target(
            name: "MeshBench", dependencies: ["MeshCore", "CLinux", .product(name: "Yams", package: "Yams")], path: "Shared/MeshBench",
            swiftSettings: swiftSettings),
        .target(
            name: "AgentSDK",
            dependencies: [
                "MeshCore", "MeshProto", log,
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Shared/AgentSDK", swiftSettings: swiftSettings),
        .target(
            name: "MeshClient", dependencies: ["MeshCore", "MeshProto", "Nats", log, metrics, lifecycle], path: "Shared/MeshClient",
            swiftSettings: swiftSettings),
        .target(name: "NatsMicro", dependencies: ["Nats", log], path: "Shared/NatsMicro", swiftSettings: swiftSettings),
        .target(
            name: "MeshRuntime",
            dependencies: [
                "MeshCore", "MeshProto", "Nats", "NatsMicro", "Store", log, metrics, lifecycle,
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Shared/MeshRuntime", swiftSettings: swiftSettings),
        .target(name: "LocalServers", dependencies: [], path: "Shared/LocalServers", swiftSettings: swiftSettings),
        .target(name: "MeshTesting", dependencies: ["LocalServers"], path: "Shared/MeshTesting", swiftSettings: swiftSettings),
    ]
        + service(
            "mesh-registry", folder: "Registry", library: "RegistryService",
            dependencies: serviceBase + ["Store", "MeshClient", argumentParser])
        + service(
            "mesh-supervisor", folder: "Supervisor", library: "SupervisorService",
            dependencies: serviceBase + ["MeshSupervision", "MeshClient", argumentParser])
        + service(
            "mesh-agent-worker", folder: "AgentWorker", library: "AgentWorkerService",
            dependencies: serviceBase + ["AgentSDK", "MeshClient", "MeshSupervision", argumentParser])
        + service(
            "mesh-gateway", folder: "Gateway", library: "GatewayService",
            dependencies: serviceBase + [
                "Store", "MeshClient", argumentParser,
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ])
        + service(
            "mesh-metrics-collector", folder: "MetricsCollector", library: "MetricsCollectorService",
            dependencies: serviceBase + ["Store", "MeshClient", argumentParser, .product(name: "Yams", package: "Yams")])
        + [
            .target(
                name: "MeshCtlKit",
                dependencies: [
                    "MeshCore", "MeshRuntime", "MeshProto", "MeshClient", "Nats", "NatsMicro", "Store", "LocalServers", "MeshBench", argumentParser, log,
                    .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                    .product(name: "Yams", package: "Yams"),
                ],
                path: "Services/MeshCtl/Kit", swiftSettings: swiftSettings),
            .executableTarget(name: "meshctl", dependencies: ["MeshCtlKit", argumentParser, log], path: "Services/MeshCtl/Main", swiftSettings: swiftSettings),

            // Tests: unit tests per module, integration against real servers, system tests
            // that start the real executables.
            .testTarget(
                name: "MeshRuntimeTests", dependencies: ["MeshRuntime", "MeshCore", "MeshProto", "Nats", "MeshTesting", log],
                swiftSettings: swiftSettings),
            .testTarget(name: "MeshCoreTests", dependencies: ["MeshCore", argumentParser], swiftSettings: swiftSettings),
            .testTarget(name: "NatsTests", dependencies: ["Nats", "NatsMicro", "MeshTesting"], swiftSettings: swiftSettings),
            .testTarget(name: "NatsMicroTests", dependencies: ["Nats", "NatsMicro", "MeshTesting"], swiftSettings: swiftSettings),
            .testTarget(name: "StoreTests", dependencies: ["Store", "MeshTesting"], swiftSettings: swiftSettings),
            .testTarget(name: "MeshProtoTests", dependencies: ["MeshProto"], swiftSettings: swiftSettings),
            .testTarget(
                name: "RegistryTests",
                dependencies: ["RegistryService", "MeshClient", "MeshRuntime", "MeshCore", "MeshProto", "Nats", "NatsMicro", "Store", "MeshTesting", log],
                swiftSettings: swiftSettings),
            .testTarget(
                name: "AgentSDKTests",
                dependencies: [
                    "AgentSDK", "MeshCore", "MeshProto", log,
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOPosix", package: "swift-nio"),
                    .product(name: "NIOHTTP1", package: "swift-nio"),
                ],
                swiftSettings: swiftSettings),
            .testTarget(name: "MeshBenchTests", dependencies: ["MeshBench", "MeshCore"], swiftSettings: swiftSettings),
            .testTarget(name: "MeshSupervisionTests", dependencies: ["MeshSupervision", "MeshCore"], swiftSettings: swiftSettings),
            .testTarget(
                name: "GatewayTests",
                dependencies: [
                    "GatewayService", "MeshCore", "MeshClient", "MeshProto", log, .product(name: "HTTPTypes", package: "swift-http-types"),
                    .product(name: "HummingbirdCore", package: "hummingbird"),
                    .product(name: "NIOCore", package: "swift-nio"),
                    .product(name: "NIOEmbedded", package: "swift-nio"),
                    .product(name: "NIOHTTP1", package: "swift-nio"),
                ],
                swiftSettings: swiftSettings),
            .testTarget(
                name: "AgentWorkerTests", dependencies: ["AgentWorkerService", "MeshCore", "MeshProto"], swiftSettings: swiftSettings),
            .testTarget(
                name: "MetricsCollectorTests",
                dependencies: ["MetricsCollectorService", "MeshCore", "MeshProto", log],
                swiftSettings: swiftSettings),
            .testTarget(
                name: "SystemTests",
                dependencies: ["MeshTesting", "LocalServers", "Nats", "NatsMicro", "MeshCore", "MeshProto", "MeshClient", "Store", log],
                swiftSettings: swiftSettings),
        ]
)
