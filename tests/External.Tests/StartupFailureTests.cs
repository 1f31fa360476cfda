using EptFuzz.Contract;
using EptFuzz.Targets.External;
using EptFuzz.Targets.External.Hosting;

namespace EptFuzz.External.Tests;

/// <summary>
/// A target that cannot start, or dies or stalls before answering HELLO, is an infrastructure
/// failure (exit 3), never a finding: no case was run. Fakes are two-line shell scripts.
/// </summary>
public sealed class StartupFailureTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("eptfuzz-ext-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string Script(string name, string body)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        return path;
    }

    [Fact]
    public void MissingExecutable_IsAnInfrastructureFailure()
    {
        using var target = new ExternalTarget(new ExternalTargetOptions { Path = Path.Combine(dir, "no-such-target") });
        var e = Assert.Throws<TargetFailureException>(() => target.Declare());
        Assert.Contains("cannot run", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TargetThatExitsBeforeHello_IsAnInfrastructureFailure_WithItsStderr()
    {
        using var target = new ExternalTarget(new ExternalTargetOptions { Path = Script("dies", "echo 'adapter: cannot open config' >&2; exit 4") });
        var e = Assert.Throws<TargetFailureException>(() => target.Declare());
        Assert.Contains("did not answer HELLO", e.Message, StringComparison.Ordinal);
        Assert.Contains("exit-4", e.Message, StringComparison.Ordinal);
        Assert.Contains("cannot open config", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TargetThatNeverAnswersHello_IsKilledAndAnInfrastructureFailure()
    {
        using var target = new ExternalTarget(new ExternalTargetOptions { Path = Script("stalls", "exec sleep 60"), Timeout = TimeSpan.FromMilliseconds(300) });
        var e = Assert.Throws<TargetFailureException>(() => target.Declare());
        Assert.Contains("no answer within", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TargetThatAnswersGarbage_IsAnInfrastructureFailure_NamingTheSdk()
    {
        // Four bytes of length, then a body that is no HELLO reply: not built with an SDK.
        using var target = new ExternalTarget(new ExternalTargetOptions { Path = Script("garbage", "printf '\\002\\000\\000\\000\\200\\000'; exec sleep 60") });
        var e = Assert.Throws<TargetFailureException>(() => target.Declare());
        Assert.Contains("SDK", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(128 + 11, "SIGSEGV")]
    [InlineData(128 + 6, "SIGABRT")]
    [InlineData(128 + 9, "SIGKILL")]
    [InlineData(101, "exit-101")]
    [InlineData(1, "exit-1")]
    public void ExitStatus_NamesTheSignalOrTheCode(int exitCode, string detail) => Assert.Equal(detail, TargetProcess.ExitDetail(exitCode));
}
