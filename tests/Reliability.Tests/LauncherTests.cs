using EptFuzz.Reliability.Tests.Support;

namespace EptFuzz.Reliability.Tests;

/// <summary>
/// Issue 17, item 5: the launcher builds once after a source changes, not on every call. The
/// launcher script is run in a copy of the repository's shape with a fake dotnet first on PATH
/// that logs what it is asked and, like an incremental build that finds nothing to do, leaves
/// eptfuzz.dll untouched.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class LauncherTests : IDisposable
{
    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void ASourceNewerThanTheDll_IsBuiltOnce_ThenNotAgain_UntilTheNextEdit()
    {
        string root = temp["repo"];
        string launcher = Path.Combine(root, "eptfuzz");
        Directory.CreateDirectory(root);
        File.Copy(Path.Combine(CliProcess.Root, "eptfuzz"), launcher);
        File.SetUnixFileMode(launcher, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        foreach (string d in (string[])["harness/Cli/bin/Release/net10.0", "targets", "reference"])
        {
            Directory.CreateDirectory(Path.Combine(root, d));
        }

        File.WriteAllText(Path.Combine(root, "Directory.Build.props"), "<Project/>");
        string dll = Path.Combine(root, "harness/Cli/bin/Release/net10.0/eptfuzz.dll");
        File.WriteAllText(dll, "not a real assembly");
        string source = Path.Combine(root, "harness/Edited.cs");
        File.WriteAllText(source, "// edited after the last build");
        var past = DateTime.UtcNow.AddHours(-1);
        File.SetLastWriteTimeUtc(dll, past);
        File.SetLastWriteTimeUtc(Path.Combine(root, "Directory.Build.props"), past.AddMinutes(-1));

        string log = temp["dotnet.log"];
        Directory.CreateDirectory(temp["bin"]);
        temp.Script("bin/dotnet", $"echo \"$1\" >> '{log}'");
        string path = temp["bin"] + ":/usr/bin:/bin";

        for (int call = 0; call < 3; call++)
        {
            Assert.Equal(0, ErrorExitTests.Run("/usr/bin/env", "PATH=" + path, launcher, "replay", "x.ept"));
        }

        Assert.Equal(["build", dll, dll, dll], File.ReadAllLines(log));

        // An edit after that build (the build's record moved back in time instead of waiting): built once more, then not again.
        foreach (string built in Directory.EnumerateFiles(Path.GetDirectoryName(dll)!))
        {
            File.SetLastWriteTimeUtc(built, DateTime.UtcNow.AddMinutes(-30));
        }

        File.SetLastWriteTimeUtc(source, DateTime.UtcNow.AddMinutes(-10));
        for (int call = 0; call < 2; call++)
        {
            Assert.Equal(0, ErrorExitTests.Run("/usr/bin/env", "PATH=" + path, launcher, "replay", "x.ept"));
        }

        Assert.Equal(["build", dll, dll, dll, "build", dll, dll], File.ReadAllLines(log));
    }
}
