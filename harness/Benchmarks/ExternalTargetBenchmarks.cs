using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Targets.External;

namespace EptFuzz.Benchmarks;

/// <summary>
/// An external target over the process protocol: the JOS-style C sample (built here with cc -O2
/// from targets/External/samples/jos-c). <see cref="RoundTrip"/> is one command and its answer
/// (an INVEPT: the target does nothing else), <see cref="MapUnmap"/> a 4 KiB map and its unmap
/// (two commands, a table page compared after each), <see cref="GenerateRunCompare"/> the
/// differential loop of DifferentialLoopBenchmarks with jos-c building the tables and its own
/// lookup compared: the per-worker cases/s of a campaign against it, minus coverage and the slot file.
/// <see cref="LookAhead"/> false sends one command at a time (<c>--target-one-at-a-time</c>),
/// true lets the SDK's journal take a case's operations ahead (the default).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Jobs))]
public class ExternalTargetBenchmarks
{
    private sealed class Jobs : ManualConfig
    {
        public Jobs() => AddJob(Job.Default.WithStrategy(RunStrategy.Monitoring).WithLaunchCount(1).WithWarmupCount(10).WithIterationCount(20)
            .WithEnvironmentVariables(new EnvironmentVariable("DOTNET_GCgen0size", DifferentialLoopBenchmarks.LauncherGen0Size)));
    }

    private const int Cases = 500;
    private const int Commands = 1000;
    private const ulong CampaignSeed = 0x5eed;

    [Params(false, true)]
    public bool LookAhead { get; set; }

    private string binary = null!;
    private ExternalTarget target = null!;
    private RunOptions options = null!;
    private EptCase[] cases = null!;
    private IEptHypervisor hypervisor = null!;

    [GlobalSetup]
    public void Setup()
    {
        binary = BuildSample();
        target = new ExternalTarget(new ExternalTargetOptions { Path = binary, LookAhead = LookAhead });
        var profile = GeneratorProfile.Default with { Features = target.Features };
        options = new RunOptions
        {
            Hypervisor = target.CreateHypervisor,
            Features = target.Features,
            Targets = [new EptFuzz.Targets.Model.ModelTarget(), target.Walker!],
        };
        cases = new EptCase[Cases];
        long probes = 0;
        for (int i = 0; i < Cases; i++)
        {
            cases[i] = CaseFeatures.Restrict(CaseGenerator.Generate(Prng.Derive(CampaignSeed, (ulong)i), profile), target.Features);
            var r = CaseRunner.Run(cases[i], options);
            if (r.Status != CaseStatus.Passed)
            {
                throw new InvalidOperationException($"case {i} did not pass on jos-c: {r.Message}");
            }

            probes += r.Counters.Probes;
        }

        hypervisor = target.CreateHypervisor();
        if (hypervisor.Configure(CpuCapabilities.Default) != ApiResult.Ok)
        {
            throw new InvalidOperationException("jos-c refused the default processor");
        }

        Console.WriteLine($"// jos-c loop: {Cases} cases, {cases.Sum(c => c.Steps.Length) / (double)Cases:0.0} steps and {probes / (double)Cases:0.0} probes a case");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        target.Dispose();
        File.Delete(binary);
    }

    [Benchmark(OperationsPerInvoke = Commands)]
    public void RoundTrip()
    {
        for (int i = 0; i < Commands; i++)
        {
            hypervisor.Invept(InveptType.Global);
        }
    }

    [Benchmark(OperationsPerInvoke = Commands)]
    public void MapUnmap()
    {
        for (int i = 0; i < Commands; i++)
        {
            hypervisor.Map(new Gpa(0x5000), new Hpa(0x9000), 4096, EptPermissions.ReadAccess | EptPermissions.WriteAccess, MemoryType.WB, false);
            hypervisor.Unmap(new Gpa(0x5000), 4096);
        }
    }

    [Benchmark(OperationsPerInvoke = Cases)]
    public int GenerateRunCompare()
    {
        int passed = 0;
        for (int i = 0; i < Cases; i++)
        {
            passed += CaseRunner.Run(cases[i], options).Status == CaseStatus.Passed ? 1 : 0;
        }

        return passed;
    }

    /// <summary>jos-c as its Makefile's shipped build makes it, into a temporary file.</summary>
    private static string BuildSample()
    {
        string root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, ".eptfuzz-root")))
        {
            root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("no .eptfuzz-root above the benchmark");
        }

        string sample = Path.Combine(root, "targets", "External", "samples", "jos-c");
        string sdk = Path.Combine(root, "targets", "External", "sdk", "c");
        string output = Path.Combine(Path.GetTempPath(), $"jos-c-bench-{Environment.ProcessId}");
        var sources = new[] { "main.c", "api.c", "ept.c", "memmap.c" }.Select(f => Path.Combine(sample, f)).Append(Path.Combine(sdk, "eptfuzz_target.c"));
        var info = new ProcessStartInfo("cc") { RedirectStandardError = true };
        foreach (var a in new[] { "-std=c11", "-O2", $"-I{sample}", $"-I{sdk}" }.Concat(sources).Concat(["-o", output]))
        {
            info.ArgumentList.Add(a);
        }

        using var cc = Process.Start(info)!;
        string errors = cc.StandardError.ReadToEnd();
        cc.WaitForExit();
        return cc.ExitCode == 0 ? output : throw new InvalidOperationException($"cc failed: {errors}");
    }
}
