namespace EptFuzz.External.Tests;

/// <summary>
/// A hypervisor project gates its releases without cloning this repository: the CLI packs as a
/// .NET tool that carries the corpus and the SDK sources. This test does what such a project's CI
/// does, from a directory outside the repository: install the tool, write the C SDK with it, build
/// the JOS-style sample against that SDK, run the gate with a JUnit report.
/// </summary>
public sealed class ToolPackageTests : IDisposable
{
    private readonly string work = Directory.CreateTempSubdirectory("eptfuzz-tool-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    [SkippableNativeFact]
    public void PackedTool_GatesTheCSample_FromOutsideTheRepository()
    {
        string packages = Path.Combine(work, "packages"), tools = Path.Combine(work, "tools"), project = Path.Combine(work, "my-hypervisor");
        Directory.CreateDirectory(project);
        string cli = Path.Combine(RepositoryRoot.Path, "harness", "Cli", "EptFuzz.Cli.csproj");
        var pack = Shell.Run("dotnet", $"pack \"{cli}\" -c Release -o \"{packages}\" -nologo -v q", RepositoryRoot.Path);
        Assert.True(pack.ExitCode == 0, pack.Output);
        string package = Path.GetFileNameWithoutExtension(Assert.Single(Directory.GetFiles(packages, "eptfuzz.*.nupkg")));
        string version = package["eptfuzz.".Length..];

        var install = Shell.Run("dotnet", $"tool install eptfuzz --tool-path \"{tools}\" --add-source \"{packages}\" --version {version}", work);
        Assert.True(install.ExitCode == 0, install.Output);
        string eptfuzz = Path.Combine(tools, "eptfuzz");

        // The SDK comes from the tool, so it speaks the tool's protocol version.
        var sdk = Shell.Run(eptfuzz, "sdk c sdk", project);
        Assert.True(sdk.ExitCode == 0, sdk.Output);
        Assert.True(File.Exists(Path.Combine(project, "sdk", "eptfuzz_target.h")), sdk.Output);

        string sample = Path.Combine(RepositoryRoot.Path, "targets", "External", "samples", "jos-c");
        string sources = string.Join(' ', new[] { "main.c", "api.c", "ept.c", "memmap.c" }.Select(f => $"\"{Path.Combine(sample, f)}\""));
        var build = Shell.Run(Shell.CCompiler()!, $"-std=c11 -O2 -Wall -Wextra -Werror -I\"{sample}\" -Isdk {sources} sdk/eptfuzz_target.c -o my-ept", project);
        Assert.True(build.ExitCode == 0, build.Output);

        // The battery, and the journal check: the SDK written out by the tool keeps a journal, and a
        // case sent ahead gets the verdict it gets one command at a time.
        var check = Shell.Run(eptfuzz, "target-check exec:./my-ept", project);
        Assert.True(check.ExitCode == 0, check.Output);
        Assert.Contains("journal: yes", check.Output, StringComparison.Ordinal);
        Assert.Contains("ok      journal: 200 generated cases get the same verdicts", check.Output, StringComparison.Ordinal);
        Assert.Contains("0 broken", check.Output, StringComparison.Ordinal);

        var gate = Shell.Run(eptfuzz, "gate --targets model,exec:./my-ept --random 20 --junit gate.xml", project);
        Assert.True(gate.ExitCode == 0, gate.Output);
        string junit = File.ReadAllText(Path.Combine(project, "gate.xml"));
        Assert.Contains("<testcase", junit, StringComparison.Ordinal);
        // The shipped corpus ran, not an empty directory: the conformance cases are in the report.
        Assert.Contains("conformance", junit, StringComparison.Ordinal);
    }
}
