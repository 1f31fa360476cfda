namespace EptFuzz.External.Tests.JosC;

/// <summary>
/// A test that compiles the C sample: skipped (with the reason) only where <c>cc</c> or <c>make</c>
/// is absent, unless EPTFUZZ_REQUIRE_ORACLE=1 (set by CI), where a missing toolchain must fail.
/// </summary>
public sealed class NativeFactAttribute : FactAttribute
{
    public NativeFactAttribute()
    {
        if (NativeToolchain.Missing() is { } tool && Environment.GetEnvironmentVariable("EPTFUZZ_REQUIRE_ORACLE") != "1")
        {
            Skip = $"{tool} is not installed here (Debian package build-essential)";
        }
    }
}

internal static class NativeToolchain
{
    /// <summary>The first of cc and make that is not on PATH, or null.</summary>
    public static string? Missing() => new[] { "cc", "make" }.FirstOrDefault(tool => !OnPath(tool));

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, tool)));
}
