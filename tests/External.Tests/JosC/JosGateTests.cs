using Xunit.Abstractions;

namespace EptFuzz.External.Tests.JosC;

/// <summary>
/// The release gate (<c>eptfuzz gate --targets model,impl,exec:jos-c</c>: the whole corpus plus the
/// fixed-seed random set) against the C sample's shipped build: every case passes, or needs an
/// operation the sample does not declare and is reported unsupported; nothing diverges.
/// </summary>
public sealed class JosGateTests(ITestOutputHelper output)
{
    // The sample declares map, unmap, protect, identity-map and invept: most cases run.
    [SkippableNativeFact]
    public void Gate_PassesOnTheCSample() => JosSample.Detection.Gate(JosSample.Build("jos-c"), minimumPassed: 200, output.WriteLine);
}
