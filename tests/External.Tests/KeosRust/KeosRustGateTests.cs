using Xunit.Abstractions;

namespace EptFuzz.External.Tests.KeosRust;

/// <summary>
/// The release gate (<c>eptfuzz gate --targets model,impl,exec:keos-rust</c>: the whole corpus plus the
/// fixed-seed random set) against the Rust sample: every case passes, or needs an operation the
/// sample does not declare and is reported unsupported; nothing diverges.
/// </summary>
public sealed class KeosRustGateTests(ITestOutputHelper output)
{
    [CargoFact]
    public void Gate_PassesOnTheRustSample()
    {
        DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-keos-");
        try
        {
            // Most generated cases fit what the sample declares (map, unmap, invept).
            KeosRustSample.Detection.Gate(KeosRustSample.Build(Path.Combine(temp.FullName, "build"), bug: null), minimumPassed: 200, output.WriteLine);
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }
}
