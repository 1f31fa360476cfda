using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using EptFuzz.Contract;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Targets.Model;

namespace EptFuzz.Mutants.Tests;

/// <summary>
/// A compiled implementation rewritten by SharpFuzz's instrumentation tool (the one the build runs
/// on the shipping implementation), for campaigns with <c>--coverage code</c>. As the CLI does for
/// the shipping one, each worker loads its own copy, with its own copy of SharpFuzz's runtime, into
/// a context of its own and points that runtime's trace map at memory of its own.
/// </summary>
public sealed class InstrumentedMutant : ICodeCoverageSource
{
    /// <summary>The trace map's size: SharpFuzz's edge indices are 16 bits.</summary>
    private const int MapSize = 1 << 16;

    private readonly byte[] image;
    private readonly KnownDivergences known;

    private InstrumentedMutant(byte[] image, KnownDivergences known)
    {
        this.image = image;
        this.known = known;
    }

    /// <summary>SharpFuzz's runtime, as the libFuzzer entry point's build carries it (this project builds that first).</summary>
    private static string SharpFuzzCommon => Path.Combine(BuildOutputs.LibFuzzer, "SharpFuzz.Common.dll");

    /// <summary>Instruments <paramref name="plain"/> (an EptFuzz.Impl.dll image) with <c>dotnet tool run sharpfuzz</c>.</summary>
    public static InstrumentedMutant Create(byte[] plain, KnownDivergences? known = null)
    {
        ArgumentNullException.ThrowIfNull(plain);
        DirectoryInfo dir = Directory.CreateTempSubdirectory("eptfuzz-instrument-");
        try
        {
            string path = Path.Combine(dir.FullName, "EptFuzz.Impl.dll");
            File.WriteAllBytes(path, plain);
            var start = new ProcessStartInfo("dotnet") { WorkingDirectory = RepositoryRoot.Path, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in (string[])["tool", "run", "sharpfuzz", path])
            {
                start.ArgumentList.Add(a);
            }

            using Process p = Process.Start(start)!;
            Task<string> stdout = p.StandardOutput.ReadToEndAsync();
            string stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
            {
                throw new InvalidOperationException($"sharpfuzz failed (exit {p.ExitCode}): {stdout.Result}{stderr}");
            }

            return new InstrumentedMutant(File.ReadAllBytes(path), known ?? KnownDivergences.None);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>The same instrumented variant, whose runs count the divergences in <paramref name="other"/> as known.</summary>
    public InstrumentedMutant With(KnownDivergences other) => new(image, other);

    public (RunOptions Options, ICodeTracer Tracer) ForWorker(int worker)
    {
        var context = new WorkerContext(worker);
        Assembly impl = context.LoadFromStream(new MemoryStream(image));
        Assembly runtime = context.LoadFromAssemblyName(new AssemblyName("SharpFuzz.Common"));

        // The map first: the instrumented constructors already count into it.
        var tracer = new Tracer(runtime.GetType("SharpFuzz.Common.Trace", throwOnError: true)!);
        Func<object> hypervisor = WithDefaults(impl.GetType("EptFuzz.Impl.Hypervisor.EptHypervisor", throwOnError: true)!);
        Func<object> target = WithDefaults(impl.GetType("EptFuzz.Impl.Target.ImplTarget", throwOnError: true)!);
        var options = new RunOptions
        {
            Hypervisor = () => (IEptHypervisor)hypervisor(),
            Targets = [new ModelTarget(), (ITarget)target()],
            Known = known,
        };
        return (options, tracer);
    }

    private static Func<object> WithDefaults(Type type)
    {
        ConstructorInfo ctor = type.GetConstructors().OrderBy(c => c.GetParameters().Length).First(c => c.GetParameters().All(p => p.HasDefaultValue));
        object?[] arguments = [.. ctor.GetParameters().Select(p => p.DefaultValue)];
        return () => ctor.Invoke(arguments);
    }

    /// <summary>Resolves SharpFuzz's runtime itself (a copy per worker); the contract and the BCL from the default context.</summary>
    private sealed class WorkerContext(int worker) : AssemblyLoadContext($"instrumented mutant, worker {worker}", isCollectible: true)
    {
        protected override Assembly? Load(AssemblyName name) =>
            name.Name == "SharpFuzz.Common" ? LoadFromAssemblyPath(SharpFuzzCommon) : null;
    }

    /// <summary>One worker's trace map: native memory its copy of SharpFuzz's Trace class points at (freed with the process).</summary>
    private sealed unsafe class Tracer : ICodeTracer
    {
        private readonly byte* map;
        private readonly FieldInfo previous;

        public Tracer(Type trace)
        {
            map = (byte*)NativeMemory.AllocZeroed(MapSize);
            FieldInfo shared = trace.GetField("SharedMem", BindingFlags.Public | BindingFlags.Static)
                ?? throw new InvalidOperationException("SharpFuzz.Common.Trace has no SharedMem field");
            previous = trace.GetField("PrevLocation", BindingFlags.Public | BindingFlags.Static)
                ?? throw new InvalidOperationException("SharpFuzz.Common.Trace has no PrevLocation field");
            shared.SetValue(null, Pointer.Box(map, typeof(byte*)));
        }

        public ReadOnlySpan<byte> Map => new(map, MapSize);

        public void Reset()
        {
            new Span<byte>(map, MapSize).Clear();
            previous.SetValue(null, 0);
        }
    }
}
