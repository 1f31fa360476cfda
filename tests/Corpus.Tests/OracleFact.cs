using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Corpus.Tests;

/// <summary>
/// A test that boots Bochs. Where the bochs binary is absent it is skipped with the reason — unless
/// EPTFUZZ_REQUIRE_ORACLE=1 (set by .ci/run), where a missing emulator must fail, not skip.
/// </summary>
public sealed class OracleFactAttribute : FactAttribute
{
    public OracleFactAttribute()
    {
        if (!ProcessRunner.IsOnPath("bochs") && Environment.GetEnvironmentVariable("EPTFUZZ_REQUIRE_ORACLE") != "1")
        {
            Skip = "bochs is not installed here (Debian packages bochs, bochs-sdl, bochsbios, vgabios)";
        }
    }
}
